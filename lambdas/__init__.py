"""Lambda entry points: thin handlers over :mod:`difusion.services`."""
