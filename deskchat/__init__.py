"""DeskChat: live chat for IT service desks."""

__version__ = "0.12.0.dev0"
