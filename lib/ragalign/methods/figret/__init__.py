"""FiGRet (arXiv 2411.03957): fine-grained LLM guidance for the retriever, with a dual curriculum.

The paper has no public code; this module is the study's interpretation, sized for a 135M
generator on two CPU cores. One round of FiGRet is

1. **poorly served questions** (:func:`.rounds.poorly_served`): train questions whose gold passages are not
   all in the retriever's top ``rag.top_k``, or whose RAG answer from that top-k is wrong (EM = 0).
   The retrieval test is free, so the generator only answers the questions that pass it.
2. **LLM feedback** (:func:`.judge.judge_questions`): constrained yes/no judgements, scored as
   log p(yes) - log p(no) of the first reply token (one forward per judgement, cached on disk
   in the LM cache), never free text: *relevance* (does this passage help answer the question?)
   and *purity* (does it contain misleading or distracting content?) for the top ``figret.k``
   passages plus the gold passages, and *comprehensiveness* (do these passages together contain
   everything needed, both hops for a multi-hop question?) for passage sets.
3. **fine-grained examples** (:func:`.examples.build_examples`): gold passages are *anchors*, the only
   positives; the LLM decides which retrieved passages become trusted hard negatives (only those
   it judges worse than the anchor; the rest may be unlabelled positives and are dropped), orders
   them, and its margin sets each example's difficulty. Sets are scored by the mean similarity of
   their members, so a comprehensiveness pair {found hop, missing hop} > {found hop, distractor}
   teaches the retriever to rank the missing hop.
4. **dual curriculum** (:func:`.examples.curriculum_order`): relevance -> comprehensiveness -> purity, and
   easy -> hard within each objective; :func:`.training.train_retriever` fine-tunes the bi-encoder with a
   set-level InfoNCE loss over the example's own negatives and the other questions' sets in the
   batch (in-batch negatives).

:func:`.rounds.run_rounds` repeats rounds (*reciprocal feedback*): re-retrieve with the updated retriever,
collect the new failures, judge, build and train again.

The modules, in the order a round uses them: :mod:`.judge` (the LLM's yes/no judgements and their
AUC against gold), :mod:`.examples` (fine-grained examples and the curriculum), :mod:`.training`
(the set-level InfoNCE loss on the study's one trainer, and pool search), :mod:`.rounds` (poorly
served questions, the rounds and the one-round ablations). Nothing is re-exported: import the
submodule you use, so a stage depends only on the code it runs.
"""
