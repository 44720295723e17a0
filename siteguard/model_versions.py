"""How a model version names its int8 variant, in one place.

`siteguard export --int8` (training/export.py) names the quantised file of version V "V-int8";
the detector pairs the two files by it (detector/variant.py) and the service counts a variant's
audit frames as V's (service/field.py). It imports nothing of theirs.
"""

INT8_SUFFIX = "-int8"
