"""Reports from stored records only: the runs of a results dir, the tables, the figures (and the
figure registry), and ``build_report``. Nothing here imports torch."""
