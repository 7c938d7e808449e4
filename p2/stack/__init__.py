"""The P2 stack on one machine: which services ``p2 up`` runs and how they are wired."""
