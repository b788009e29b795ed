"""The shared machinery every stage stands on: params, data, models, the cached LM, retrieval, ranking and its one trainer, answering, metrics, validity gates, the artifact contract, plots."""
