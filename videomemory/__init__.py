"""videomemory: a retrieval-aware video memory service built on a predictive visual code.

The flow runs one way (DESIGN §2): ``codec`` (decode -> motion -> GOPs) -> ``memory`` (store)
-> ``retrieval`` (index, clips, gRPC). This root package holds only what all of them share:
the error hierarchy and the command-line shell.
"""

__version__ = "0.1.0"
