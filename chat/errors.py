"""The refusals of chat: what a user asked for that cannot be done, with a code and plain words.

Services raise them, selectors raise them for what the asker may not see, and sockets and views
turn them into an error frame or a message. They live apart so that every layer can import them
without importing the layer above.
"""


class ChatError(Exception):
    """A refusal with a stable code for clients and a message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message
