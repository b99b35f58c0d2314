"""`coa pipeline`: the paper's Table 1 for any run: a tree of stage runs (shared prefixes trained once), each row
evaluated, the table written as markdown, CSV, PNG and a W&B table."""
