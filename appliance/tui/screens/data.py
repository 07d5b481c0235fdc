"""placeholder while building"""
from .base import AirlockScreen
class DataScreen(AirlockScreen):
    MODE = "data"
