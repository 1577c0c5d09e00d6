"""The image construct's former module: it locates either engine's image now, as ``container_image``."""

from llama_constructs.endpoint.container_image import ImageLocation, TgiImageLocation

__all__ = ["ImageLocation", "TgiImageLocation"]
