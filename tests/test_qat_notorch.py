"""Without torch: norsim imports, the zoo loads, and norsim.qat / norsim train fail clearly."""

import subprocess
import sys
import textwrap

BLOCK = textwrap.dedent("""
    import sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "torch" or name.startswith("torch."):
                raise ImportError("No module named 'torch'")
    sys.meta_path.insert(0, Block())
""")


def _run(code):
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)],
                          capture_output=True, text=True)


def test_import_without_torch_gives_one_clear_message():
    r = _run("""
        import norsim, norsim.mapping.quant_model, norsim.mapping.reference, norsim.zoo
        import norsim.cli.main
        norsim.zoo.load("lenet-mnist-4b")        # the zoo needs no torch
        from norsim.errors import NorsimError
        try:
            import norsim.qat
        except ImportError as e:
            print("MSG:", e, isinstance(e, NorsimError))
        print("torch" in sys.modules)
    """)
    assert r.returncode == 0, r.stderr
    assert "MSG: norsim.qat needs PyTorch" in r.stdout and "pip install norsim[train]" in r.stdout
    assert "True\nFalse" in r.stdout           # a NorsimError; torch never got imported


def test_cli_train_without_torch_fails_in_one_line(tmp_path):
    r = _run(f"""
        from norsim.cli.main import main
        sys.exit(main(["train", "--epochs", "1", "--out", {str(tmp_path / 'o')!r}]))
    """)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "pip install norsim[train]" in lines[0]
