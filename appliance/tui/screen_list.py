"""The app's screens (mode name, title, key, module:class) and its log file: the facts the app, the navigation bar
and the screens all read, kept in a module that imports none of them.
"""

from pathlib import Path

from ..paths import home

SCREENS = [
    ("home", "Home", "1", "home:HomeScreen"),
    ("data", "Data", "2", "data:DataScreen"),
    ("train", "Train", "3", "train:TrainScreen"),
    ("jobs", "Jobs", "4", "jobs:JobsScreen"),
    ("export", "Export", "5", "export:ExportScreen"),
    ("chat", "Chat", "6", "chat:ChatScreen"),
    ("models", "Models", "7", "models:ModelsScreen"),
    ("serve", "Serve", "8", "serve:ServeScreen"),
    ("keys", "Keys", "9", "keys:KeysScreen"),
]


def log_path() -> Path:
    return home() / "logs" / "tui.log"
