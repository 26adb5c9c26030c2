"""WXBizMsgCrypt against the two published vector sets (research file A7), and its failures."""

from __future__ import annotations

import base64

import pytest

from plugins.wecom.wire import CryptoError, MsgCrypt, XmlError, envelope, message_xml, pad, parse_flat, signature, unpad

# Vector set 1: the Tencent official sample (token QDG6eK), as in doc 91144 / Sample.cpp.
TX = MsgCrypt("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
TX_ECHO = dict(
    msg_signature="5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", timestamp="1409659589", nonce="263014780",
    encrypted="P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
)
TX_MSG = dict(
    msg_signature="477715d11cdb4164915debcba66cb864d751f3e6", timestamp="1409659813", nonce="1372623149",
    encrypted=(
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
    ),
)

# Vector set 2: wechatpy tests/test_crypto.py (deterministic random prefix "1234567890123456").
WP = MsgCrypt("123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a")
WP_ECHO = dict(
    msg_signature="dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", timestamp="1411443780", nonce="437374425",
    encrypted="4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==",
)
WP_MSG = dict(
    msg_signature="74d92dfeb87ba7c714f89d98870ae5eb62dff26d", timestamp="1411525903", nonce="461056294",
    encrypted=(
        "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0="
    ),
)
WP_REPLY = "\n".join([
    "<xml>",
    "<MsgType><![CDATA[text]]></MsgType>",
    "<Content><![CDATA[test]]></Content>",
    "<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>",
    "<ToUserName><![CDATA[messense]]></ToUserName>",
    "<AgentID>1</AgentID>",
    "<CreateTime>1411525903</CreateTime>",
    "</xml>",
])
WP_REPLY_ENCRYPT = (
    "9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3"
)


def test_tencent_url_verification_decrypts_to_the_published_echo():
    assert TX.decrypt_verified(**TX_ECHO) == b"1616140317555161061"


def test_tencent_message_decrypts_to_the_published_xml():
    message = TX.decrypt_verified(**TX_MSG)
    fields = parse_flat(message)
    assert fields == {"ToUserName": "wx5823bf96d3bd56c7", "FromUserName": "mycreate", "CreateTime": "1409659813",
                      "MsgType": "text", "Content": "hello", "MsgId": "4561255354251345929", "AgentID": "218"}
    assert message.count(b"\n") >= 6  # elements separated by newlines, as published


def test_tencent_plaintext_shape_random_prefix_length_and_pad_30():
    # decrypt by hand to check the layout the research file describes: pad 30 > one AES block
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    key = base64.b64decode("jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C=")
    raw = base64.b64decode(TX_MSG["encrypted"])
    assert len(raw) == 352
    d = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = d.update(raw) + d.finalize()
    assert plain[-1] == 30 and plain[:16].hex() == "0960688932c47ef1".encode().hex()
    assert unpad(plain).endswith(b"wx5823bf96d3bd56c7")


def test_wechatpy_url_verification_and_wrong_nonce():
    assert WP.decrypt_verified(**WP_ECHO) == b"5927782489442352469"
    with pytest.raises(CryptoError) as info:
        WP.decrypt_verified(**{**WP_ECHO, "nonce": "437374424"})
    assert info.value.code == -40001


def test_wechatpy_message_decrypts():
    fields = parse_flat(WP.decrypt_verified(**WP_MSG))
    assert (fields["Content"], fields["FromUserName"], fields["MsgId"], fields["AgentID"]) == (
        "test", "messense", "4363689963896700987", "1")


def test_wechatpy_deterministic_encrypt_and_signature():
    encrypted = WP.encrypt(WP_REPLY.encode(), random_prefix=b"1234567890123456")
    assert encrypted == WP_REPLY_ENCRYPT
    assert WP.sign("1411525903", "461056294", encrypted) == "407518b7649e86ef23978113f92d27afa9296533"


def test_signature_is_sorted_concatenation_without_separator():
    import hashlib

    joined = "1372623149" + "1409659813" + "QDG6eK" + TX_MSG["encrypted"]
    assert signature("QDG6eK", "1409659813", "1372623149", TX_MSG["encrypted"]) == hashlib.sha1(joined.encode()).hexdigest()


def test_wrong_receive_id_is_rejected():
    other = MsgCrypt("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wwSOMEOTHERCORP")
    with pytest.raises(CryptoError) as info:
        other.decrypt_verified(**TX_MSG)
    assert info.value.code == -40005


@pytest.mark.parametrize("position", [0, 100, 351])
def test_a_flipped_ciphertext_byte_is_rejected(position):
    raw = bytearray(base64.b64decode(TX_MSG["encrypted"]))
    raw[position] ^= 0x01
    tampered = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(CryptoError) as info:
        TX.decrypt_verified(**{**TX_MSG, "encrypted": tampered})
    assert info.value.code == -40001  # the signature covers the ciphertext
    # even without the signature check, decryption never yields the original message
    try:
        assert TX.decrypt(tampered) != TX.decrypt(TX_MSG["encrypted"])
    except CryptoError as exc:
        assert exc.code in (-40005, -40007, -40008)


def test_round_trip_and_errors_carry_no_plaintext():
    crypt = MsgCrypt("tok", "A" * 43, "ww1234")
    message = message_xml({"ToUserName": "ww1234", "Content": "秘密 13800138000"})
    encrypted = crypt.encrypt(message)
    assert crypt.decrypt(encrypted) == message
    with pytest.raises(CryptoError) as info:
        MsgCrypt("tok", "B" * 43, "ww1234").decrypt(encrypted)
    assert "13800138000" not in str(info.value) and "A" * 10 not in str(info.value)


@pytest.mark.parametrize("bad", ["short", "!" * 43])
def test_bad_encoding_aes_key(bad):
    with pytest.raises(CryptoError) as info:
        MsgCrypt("t", bad, "c")
    assert info.value.code == -40004


def test_pad_is_to_32_byte_blocks():
    assert len(pad(b"x" * 31)) == 32 and pad(b"x" * 32)[-1] == 32
    with pytest.raises(CryptoError):
        unpad(b"x" * 31 + bytes([33]))


def test_billion_laughs_is_refused():
    bomb = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<xml><Content>&lol3;</Content></xml>"""
    with pytest.raises(XmlError):
        parse_flat(bomb)


def test_external_entity_is_refused():
    xxe = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><A>&e;</A></xml>'
    with pytest.raises(XmlError):
        parse_flat(xxe)


def test_envelope_round_trip_and_root_check():
    body = envelope("ww1", "abc+/=", 1000002)
    assert parse_flat(body) == {"ToUserName": "ww1", "Encrypt": "abc+/=", "AgentID": "1000002"}
    with pytest.raises(XmlError):
        parse_flat(b"<root><A>1</A></root>")
    with pytest.raises(XmlError):
        parse_flat(b"<xml><A>1</A>")
