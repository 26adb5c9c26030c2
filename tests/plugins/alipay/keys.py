"""A test key written here (RSA-2048, PKCS#1, for tests only) and helpers that sign as Alipay does,
without the plugin's code: the vectors the tests compare against are computed from these."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

APP_KEY_PEM = """-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAzK875bZV14KKrXeRC0gOJiKmmjReK64JxsolMtvBDXnlgX20
zu5/tgwE9JQx2IHARBqxnL1NigZlbKch/mh7Mazz1NaCDINa6eMWlaJWBburb7pL
DD+FU468dd/aecCl8lyun70AiYuyNErmByxPuvwHF8UkV6GzXrdlseASaroX2m9T
I7FzYzU8UFRbvYgZAy9YFLv64zFFriKi8OdKNa2S3lp3AnzI08z3zPuKvUFeNinj
OdiCm9ArPQCye1nhBsMbX/bVzxtn3pREAYE+MrVCJIweaMfaxEBAlXjcy/cu5c6X
RCBBBj6jsh1pZP6h3/ruTv0wvcIeMfx2robkBQIDAQABAoIBAALVLgQI2PlJkjfC
XtyEG8YFVr7tmJwMJZB9vbQNfId+N2HqZnUyscvIMM1du67eZNXMdMbRi+AsJH0z
dvH5ajMOzLUWXuhjbP+tp+NcQsqDhWTfdChwPJ0ibZNIDNMAiotnIveM+xPsPgQh
QTu6LkRNNp/ql40q7LuT2DF1A2w8rr+Mn0nv0JKzIvLn2Fp77Vm15irHePqAJNNQ
wcK0nZPUTmORlgBemUsreKijoypcEpCZgqBSGIcqe/9L0tfYUtT9Trr+Gbcpfk1T
2C96gDQyUwSn2NAQUDF02hMKI13C5RHHd7WJfxvYdv/OPtEN8gArTWNJxovND9KS
+oQ57oECgYEA6O5QyK04MG6qEseuWe1NZeXI5P8Qzlr87LM1IsstpEHDKrDiKUVs
62/Qo0tpOqUMFCZs3ya++/+y4a53D0GcGyVDy//IBr5B+DyzArDO9mZ133Dd5sQB
T0sngb19XM3HXww3uOluIuoNHewXInz+LAuzc8Xw3je8CrHr6WI1K+ECgYEA4PTD
s8uvBvkkPY/DSbGqzJ6ZkjkNLswxJpw1vCLL6iGsQCIv4w+XcIH4bVAYJ3OW+AT9
3pVLhtF0vQ8C9yWnkQMLqr1fcCfvUgv21/HzAVIquILjtmYUp8NQw2PrA9TnmpjN
fLHaTAUrW1wcrmg1yjB9OyUV9zG97TeVLvgVHKUCgYEAmIj/w/qTUjwWCchTp7Yb
uj/Y6AUUV14ERWkxwcA1+lvKV9mPsSEyq5cElPrcRTgyCbwEDboM1W9kECA0/Xuk
o64qkJvGvIu5Hbt6KqfoUDlWtWTvG6B9jxSTIYYaYzyqc9bHYsMSibCluFOT7tTV
ibh74rPcAVmUPZi3+ZSDZ2ECgYB6NuAfzTfw7OgwfetWHS0y77N1SoOL+il11YYo
CSuJrvObADfN/0mCOUpTcSE+RcEuS9/0zl1zCFaI5B/zT8TCtsne3/V6xGdzxsY7
udoQzKgjCBFYpgrwvd8h2CX1NfUB+6Qf66wygth0UQ3P/xPCHifbOyG844xQ1VK6
atNldQKBgQC22gx2d5aqzJyGX+vzolsd4GfrJajXARNuRfiL2/xaGqGnYz7z90lH
fRf94SmYdr+phh/tde8wnlFAxb8L8ajyfT3C/t9Q6JuN3UeUg7oOfCmbwDCuvXY9
YYrKxnqq29P7qHO7GcFABywQngyTUdQG5Nz01ASv2C3R47VVBR4Icg==
-----END RSA PRIVATE KEY-----
"""

APP_KEY = serialization.load_pem_private_key(APP_KEY_PEM.encode(), password=None)
assert isinstance(APP_KEY, rsa.RSAPrivateKey)


def pem_public(key: rsa.RSAPrivateKey) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pkcs8(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def bare_base64(pem: str) -> str:
    """A key the way Alipay's console shows it: the PEM body on one line, no armour."""
    return "".join(line for line in pem.splitlines() if not line.startswith("-----"))


def rsa2(key: rsa.RSAPrivateKey, text: str) -> str:
    """SHA256withRSA (PKCS#1 v1.5) over UTF-8, base64: with ``openssl dgst`` when it is installed
    (an implementation apart from the plugin's), else with cryptography's primitive."""
    openssl = shutil.which("openssl")
    if openssl:
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "key.pem"
            path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
            out = subprocess.run([openssl, "dgst", "-sha256", "-sign", str(path)], input=text.encode("utf-8"),
                                 capture_output=True, check=True).stdout
        return base64.b64encode(out).decode()
    return base64.b64encode(key.sign(text.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_body(name: str, node_text: str, key: rsa.RSAPrivateKey) -> bytes:
    """A gateway answer as Alipay writes it: the node's text exactly, and its signature."""
    return ('{"' + name + '":' + node_text + ',"sign":' + json.dumps(rsa2(key, node_text)) + "}").encode("utf-8")
