"""placeholder while building"""
from .base import AirlockScreen
class ExportScreen(AirlockScreen):
    MODE = "export"
