"""placeholder while building"""
from .base import AirlockScreen
class TrainScreen(AirlockScreen):
    MODE = "train"
