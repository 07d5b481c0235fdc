"""placeholder while building"""
from .base import AirlockScreen
class ChatScreen(AirlockScreen):
    MODE = "chat"
