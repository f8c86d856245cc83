"""The site file: models, one module per section (``models``); reading YAML with line
marks (``yaml_reader``, its errors in plain words in ``yaml_errors``); ``include:``
(``include``) into one ``Document`` (``document``); loading and validation (``loader``);
checks that need the whole file, one module per concern (``checks``); and secret
references (``secrets``)."""
