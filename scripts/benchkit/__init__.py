"""``scripts/bench``: benchmark the gateway against fake upstreams, side by side with direct.

One module per job: ``cli`` (arguments, the run's life), ``main_run`` (the default run and
``--quick``), ``wrk``, ``ttfb``, ``paced`` (open loop), ``streams`` (concurrent streams, CPU per
event), ``floor`` and ``floor_server`` (Granian + Falcon alone), ``transports``, ``stores``,
``protocols`` and ``protocol_answers``, ``overhead`` and ``overhead_run`` (sequential added latency
in interleaved rounds), ``litellm_proxy``; under them ``fakes``, ``paced_fake``, ``gateway_process``,
``session``, ``report``, ``targets``, ``system``, ``tools`` and ``common``.
"""
