"""coa: train agent models that call tools inside their chain of thought."""
__version__ = "0.1.0"
