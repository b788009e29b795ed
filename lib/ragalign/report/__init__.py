"""Stage 09's tables: the headline, paired differences, validity gates, costs, the README block."""
