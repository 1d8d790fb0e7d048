"""Paper tables and figures from logged runs (`nclb table NAME`, `make table2`)."""
