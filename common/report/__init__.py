"""MLflow -> the comparison report: what it reads, the analyses, the blocks and their rendering."""
