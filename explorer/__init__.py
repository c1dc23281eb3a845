"""The browser explorer that ``explore.py`` serves: request checking and the URL's state
(``state``), the files it may read (``catalogue``), the pictures (``renderer``), the generate.py
command for each (``commands``), the HTTP server (``server``) and the page (``page.html``)."""
