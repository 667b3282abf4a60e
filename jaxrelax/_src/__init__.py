"""jaxrelax implementation. Import the public modules instead (``import jaxrelax as jr``)."""
