"""Exception classes. Messages always name the file, the record and the problem."""


class VirNucProError(Exception):
    """Base class for errors a user can act on (bad input, bad model file, ...)."""


class InputError(VirNucProError):
    """An input file (reads) cannot be used as given."""


class CheckpointError(VirNucProError):
    """A model or classifier file cannot be loaded safely or does not fit."""


class FeatureError(VirNucProError):
    """Embeddings or predictions do not line up (missing frame, wrong dimension)."""


class OptionError(VirNucProError):
    """A run option has a value it cannot take."""
