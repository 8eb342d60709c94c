"""Samples taken while a case runs -> the series fleet keeps and the sampler's metrics. Pure.

``decode`` (the agent's sample messages -> whole file texts), ``collect`` (SampleCollector:
snapshots -> series, thinned for the store), ``derive`` (one attempt's series -> Measurements)
and ``formulas`` (increase, rate, growth, page-table locality: missing inputs give None).
The suite's ``sampling`` option is read by fleet.config.sampling.
"""
