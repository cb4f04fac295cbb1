"""What the guide does and whether it helps: a batch inspected, margin sweeps, embedding maps, two
guides compared, the whole-data-set audit, cleaning, guide-filtered mining, the guide-ladder experiment."""
