"""Loading media safely: the only code in omniretrieve that reads files or URLs.

Untrusted inputs are the normal case, so the defaults refuse what could hurt: no URLs unless
enabled; when enabled only ``http``/``https`` to public addresses, checked at every redirect, with
timeouts, a total deadline and a byte cap; paths optionally confined to allowed roots (symlinks
and ``..`` resolved first); FIFOs, devices and directories refused without being opened;
decompression bombs refused from the header; every image fully decoded up front.

Setup::

    from omniretrieve.media import MediaLoader, MediaPolicy
    from omniretrieve.types import Audio, Image, Video

Load::

    loader = MediaLoader()                                    # safe defaults: no URLs
    img = loader.load_image(Image("photos/cat.jpg"))          # RGB PIL image, EXIF-rotated
    wav = loader.load_audio(Audio("a.wav"), sampling_rate=16_000)   # float32 (N,)
    clip = loader.load_video(Video("v.mp4"), num_frames=8)    # uint8 (8, H, W, 3)

Allow URLs, but only to public hosts, and files only under one directory::

    loader = MediaLoader(MediaPolicy(allow_urls=True, allowed_roots=("/srv/media",)))

Every failure is a :class:`~omniretrieve.errors.MediaError` subclass naming the input and the reason.
"""

from omniretrieve.media._image import IMAGE_FORMATS
from omniretrieve.media._loader import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    TEXT_EXTENSIONS,
    VIDEO_EXTENSIONS,
    MediaLoader,
    from_path,
)
from omniretrieve.media._policy import MediaPolicy, address_refusal, system_resolver
from omniretrieve.media._video import VIDEO_CONTAINERS

__all__ = [
    "AUDIO_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "IMAGE_FORMATS",
    "TEXT_EXTENSIONS",
    "VIDEO_CONTAINERS",
    "VIDEO_EXTENSIONS",
    "MediaLoader",
    "MediaPolicy",
    "address_refusal",
    "from_path",
    "system_resolver",
]
