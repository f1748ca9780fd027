"""codec: the predictive visual code (DESIGN §4, PAPER §1).

decode (PyAV, sample to fps, resize to the model grid) -> motion (16x16 block search) ->
gop (pcost, anchors, causal encoder). Pure compute except ``decode``, which is the I/O edge.
"""
