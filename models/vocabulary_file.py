"""Reading a deployed vocabulary file (user_vocab.txt, item_vocab.txt): the id of index i on line i.

models/mobile_export.py writes them; the TFLite client (serving/tflite_predict.py), the blessing of
a pushed model (components/evaluation/blessing.py) and `recdistill add-items` read them here.
"""

from typing import List

from models.foundation import storage


def read_vocabulary(path: str) -> List[str]:
    """A vocabulary file as models/mobile_export.write_vocabularies writes it: the id of index i at [i].

    Split on "\\n" only: str.splitlines would also split at U+2028, U+2029, U+0085, \\x1c-\\x1e, \\v
    and \\f, which an id may hold. Raises ValueError naming the file when it is not UTF-8."""
    data = storage.read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a vocabulary file (byte {error.start} is not UTF-8)") from None
    return text.split("\n")[:-1]
