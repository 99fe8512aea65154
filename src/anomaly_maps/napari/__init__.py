"""The napari adapter: reader, writer and sample data (widgets come with the scorers).

Only this package imports napari; everything below it runs headless.
"""
