#!/usr/bin/python3
"""Checks ONNX files with the reference checker (Debian python3-onnx): full_check also runs
strict shape inference. Prints "ok <path>" per file, or the checker's message and exits 1."""
import sys

import onnx

failed = False
for path in sys.argv[1:]:
    try:
        onnx.checker.check_model(onnx.load(path), full_check=True)
        print(f"ok {path}")
    except Exception as error:  # the checker raises several exception types
        print(f"FAIL {path}: {error}")
        failed = True
sys.exit(1 if failed else 0)
