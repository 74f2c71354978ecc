"""The one place the version is written (pyproject.toml and the image tag read it from here);
a module of its own, so that nothing imports the package's ``__init__`` back."""

__version__ = "0.1.0"
