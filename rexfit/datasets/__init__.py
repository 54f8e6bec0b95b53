"""DFT datasets: structures with reference energies, forces and stresses, read from files."""
