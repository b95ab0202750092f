"""Django settings for the B1 baseline: Channels and a Redis channel layer, nothing else.

No database, no sessions, no auth, no templates: the relay measures what Channels, daphne and
the channel layer cost on their own. RELAY_LAYER picks `core` (RedisChannelLayer), `pubsub`
(RedisPubSubChannelLayer) or `memory` (InMemoryChannelLayer, as DeskChat's embedded default); REDIS_URL and REDIS_PREFIX work as in DeskChat.
"""

import os

SECRET_KEY = "bench-relay-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
DATABASES = {}
USE_TZ = True
ASGI_APPLICATION = "bench.relay_asgi.application"
_layer = os.environ.get("RELAY_LAYER", "pubsub")
if _layer == "memory":
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": {
                "core": "channels_redis.core.RedisChannelLayer",
                "pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
            }[_layer],
            "CONFIG": {
                "hosts": [os.environ["REDIS_URL"]],
                "prefix": os.environ.get("REDIS_PREFIX", "dc_bench") + "_relay",
            },
        }
    }
LOGGING_CONFIG = None
