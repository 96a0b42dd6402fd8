"""murmurlm: heart murmur characterisation from phonocardiograms.

Layers (data flows one way): ``data`` (CirCor reader, label schema, splits) -> ``signal`` (filters,
features, synthetic PCG, segmentation) -> ``models`` (compact CNN, audio LMs) -> ``evaluate`` and
``inference`` -> ``serve`` and ``cli``.
"""

__version__ = "0.1.0"
