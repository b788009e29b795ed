"""Stage 11's tables: the headline, paired differences, validity gates, costs, the README block."""
