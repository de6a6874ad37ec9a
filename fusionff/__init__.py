"""fusionff: multi-state equivariant potentials (fusion-block MACE) and batched surface hopping.

Units at every public interface: energies in eV, lengths in Angstrom, time in fs, masses in amu.
"""

__version__ = "0.1.0"
