"""The scale model of dfs (issue 18): a seeded discrete-event simulation of a modelled
cluster that runs dfs's own placement (``dfs.placement``) and durability rules
(``dfs.durability_policy``), a Markov model of chunk loss fed with the rates it measures,
and a cost model built on the metadata calls the benchmarks count.

Modules: ``config`` (inputs), ``cluster`` (state), ``engine`` (event loop, failures,
workload, GC), ``repair`` (repair passes), ``markov`` (loss probability), ``cost``,
``experiments`` (node/zone loss, movement, validation), ``run`` (one run end to end),
``report`` and ``plots`` (outputs), ``__main__`` (``python -m dfs.sim``).
"""
