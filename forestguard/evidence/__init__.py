"""Evidence from reference layers: why a zone is legal or illegal, and whether a plot is at risk.

- :mod:`.layers` reads and checks reference layers (kinds, ids, validity dates, provenance);
- :mod:`.compute` measures zones against them (findings) and suggests classes, incrementally;
- :mod:`.rules` loads the versioned rules (``rules.toml``); :mod:`.plots` gives plots' risk;
- :mod:`.records` holds the plain records and Arrow schemas the stores keep.

Submodules are imported where used (this package imports nothing), so the stores can name
:mod:`.records` without loading the geometry machinery.
"""
