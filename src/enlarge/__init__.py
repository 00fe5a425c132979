"""enlarge: enlarge images by any factor with implicit-function super-resolution, fast on CPUs."""

__version__ = "0.1.0"
