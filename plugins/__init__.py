"""gatewise's built-in plugins: data sources, the 'mlp' trainer and the INT8 compressors.

Each module registers through the same hooks a third-party plugin uses (see docs/plugins.md).
"""
