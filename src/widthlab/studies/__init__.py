"""The studies of widthlab, one folder each (see `widthlab.runtime.study`)."""
