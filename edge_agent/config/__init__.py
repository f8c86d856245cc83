"""The site file: models (``models``), loading with line marks (``loader``), checks that
need the whole file (``checks``), and secret references (``secrets``)."""
