"""The wire codec beyond the samples: append/seal/verify round trips, tampering, hostile input,
inspect's refusals and key handling, and exchange's error mapping (against a local stub)."""
from __future__ import annotations

import json
import os
import threading
import unittest
from http.server import BaseHTTPRequestHandler, HTTPServer

from .helpers import SAMPLES, mint, raw

from baton_sdk import (BatonError, ExchangeError, append_block, block_to_datalog, decode_token, exchange,
                       inspect, seal_token, verify_signatures)
from baton_sdk import biscuit_schema_pb2 as pb
from baton_sdk.model import BlockModel, Check, Predicate, PublicKey, Query
from baton_sdk.wire import token_bytes, token_text

RIGHTS = [("pg:appdb/public.orders", "read")]


def keyset(root, key_id=1):
    return {"keys": [{"id": key_id, "algorithm": "ed25519", "public_key": raw(root.public_key()).hex(), "status": "active", "created_at": "2026-01-01T00:00:00Z"}]}


class Codec(unittest.TestCase):
    def setUp(self):
        self.token, self.root = mint(RIGHTS)
        self.root_key = PublicKey("ed25519", raw(self.root.public_key()))

    def test_unpadded_and_padded_text_decode_alike(self):
        self.assertEqual(decode_token(self.token.rstrip("=")).blocks, decode_token(self.token).blocks)
        self.assertEqual(decode_token(token_bytes(self.token)).blocks[0].revocation_id, decode_token(self.token).blocks[0].revocation_id)

    def test_hostile_text_is_malformed(self):
        for bad in ("", "   ", "a", "abc$", "++//", self.token + "!", "A" * 100_000, 42):
            with self.subTest(bad=str(bad)[:20]):
                with self.assertRaises(BatonError) as ctx:
                    decode_token(bad)
                self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_MALFORMED")

    def test_truncated_or_flipped_bytes_never_verify(self):
        data = token_bytes(self.token)
        for i in range(0, len(data), 7):
            flipped = bytearray(data)
            flipped[i] ^= 0x01
            with self.subTest(byte=i):
                with self.assertRaises(BatonError):
                    verify_signatures(bytes(flipped), self.root_key)
        with self.assertRaises(BatonError):
            verify_signatures(data[:-5], self.root_key)

    def test_append_then_seal_verifies_and_seal_is_final(self):
        block = BlockModel(facts=(Predicate("delegated_to", (("string", "x"),)),), context="ctx")
        child = append_block(self.token, block)
        token = verify_signatures(child, self.root_key)
        self.assertEqual(token.blocks[1].context, "ctx")
        sealed = seal_token(child)
        self.assertTrue(verify_signatures(sealed, self.root_key).sealed)
        for op in (lambda: append_block(sealed, block), lambda: seal_token(sealed)):
            with self.assertRaises(BatonError) as ctx:
                op()
            self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_SEALED")

    def test_a_swapped_proof_does_not_verify(self):
        a = pb.Biscuit.FromString(token_bytes(self.token))
        other, _ = mint(RIGHTS, root=self.root)
        a.proof.nextSecret = pb.Biscuit.FromString(token_bytes(other)).proof.nextSecret
        forged = token_text(a.SerializeToString())
        with self.assertRaises(BatonError) as ctx:
            verify_signatures(forged, self.root_key)
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_SIGNATURE")
        with self.assertRaises(BatonError) as ctx:
            append_block(forged, BlockModel(facts=(Predicate("delegated_to", (("string", "x"),)),)))
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_MALFORMED")

    def test_a_removed_block_does_not_verify(self):
        child = append_block(self.token, BlockModel(facts=(Predicate("delegated_to", (("string", "x"),)),)))
        grand = pb.Biscuit.FromString(token_bytes(append_block(child, BlockModel(facts=(Predicate("delegated_to", (("string", "y"),)),)))))
        del grand.blocks[0]
        with self.assertRaises(BatonError):
            verify_signatures(token_text(grand.SerializeToString()), self.root_key)

    def test_unknown_fields_in_a_block_are_refused(self):
        message = pb.Biscuit.FromString(token_bytes(self.token))
        message.authority.block = message.authority.block + b"\x48\x01"  # field 9, varint 1
        with self.assertRaises(BatonError) as ctx:
            decode_token(token_text(message.SerializeToString()))
        self.assertIn("does not know", ctx.exception.message)

    def test_invalid_block_models_are_type_errors(self):
        for block in (
            BlockModel(facts=(Predicate("bad name", (("string", "x"),)),)),
            BlockModel(facts=(Predicate("f", (("variable", "x"),)),)),
            BlockModel(facts=(Predicate("f", (("string", "\ud800"),)),)),
            BlockModel(facts=(Predicate("f", (("integer", 2**63),)),)),
            BlockModel(facts=(Predicate("f", (("set", (("integer", 1), ("string", "a"))),)),)),
            BlockModel(checks=(Check("if", (Query((), ((("binary", "add", None),),)),)),)),
            BlockModel(checks=(Check("if", ()),)),
            BlockModel(facts=(Predicate("f", (("null", None),)),)),  # needs v3.3, above the default
        ):
            with self.subTest(block=repr(block)[:60]):
                with self.assertRaises(TypeError):
                    append_block(self.token, block)

    def test_strings_round_trip_escaped(self):
        hostile = 'x"); right("pg:appdb/*", "admin'
        child = append_block(self.token, BlockModel(facts=(Predicate("purpose", (("string", hostile),)),)))
        self.assertEqual(block_to_datalog(decode_token(child).blocks[1]), 'purpose("x\\"); right(\\"pg:appdb/*\\", \\"admin");\n')

    @unittest.skipUnless(os.path.isdir(SAMPLES), "samples missing")
    def test_a_p256_chain_cannot_be_extended_offline(self):
        with open(os.path.join(SAMPLES, "test036_secp256r1.bc"), "rb") as f:
            data = f.read()
        with self.assertRaises(BatonError) as ctx:
            append_block(data, BlockModel(facts=(Predicate("f", (("integer", 1),)),)))
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_MALFORMED")


class Inspect(unittest.TestCase):
    def setUp(self):
        self.token, self.root = mint(RIGHTS)

    def test_reserved_names_are_reported_unverified_and_raised_verified(self):
        forged = append_block(self.token, BlockModel(facts=(Predicate("resource", (("string", "pg:appdb/public.orders"),)),)))
        seen = inspect(forged)
        self.assertFalse(seen["verified"])
        self.assertEqual(seen["refusal"]["code"], "BATON_ERR_TOKEN_RESERVED_NAME")
        with self.assertRaises(BatonError) as ctx:
            inspect(forged, keyset(self.root))
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_RESERVED_NAME")

    def test_hand_written_checks_make_the_view_approximate(self):
        child = append_block(self.token, BlockModel(
            facts=(Predicate("delegated_to", (("string", "h"),)),),
            checks=(Check("if", (Query((Predicate("resource", (("variable", "r"),)),), ((("value", ("variable", "r")), ("value", ("string", "x")), ("binary", "suffix", None)),)),)),),
        ))
        seen = inspect(child)
        self.assertTrue(seen["effective"]["approximate"])
        self.assertEqual(seen["lineage"][1]["opaque"], ['check if resource($r), $r.ends_with("x");'])

    def test_keys(self):
        self.assertTrue(inspect(self.token, keyset(self.root))["verified"])
        self.assertTrue(inspect(self.token, {1: raw(self.root.public_key()).hex()})["verified"])
        with self.assertRaises(BatonError) as ctx:
            inspect(self.token, keyset(self.root, key_id=2))
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_UNKNOWN_KEY")
        _, other = mint(RIGHTS)
        with self.assertRaises(BatonError) as ctx:
            inspect(self.token, keyset(other))
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_SIGNATURE")


class _Stub(BaseHTTPRequestHandler):
    reply = (200, {"access_token": "tok"})
    seen = []

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        _Stub.seen.append((self.path, body))
        status, payload = _Stub.reply
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Exchange(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = HTTPServer(("127.0.0.1", 0), _Stub)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}/"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def test_sends_an_rfc8693_request(self):
        _Stub.reply = (200, {"access_token": "tok", "token_type": "N_A"})
        self.assertEqual(exchange(self.url, "jwt-here", resources=["pg:appdb/public.orders"], scope=["read"], ttl="5m"), "tok")
        path, body = _Stub.seen[-1]
        self.assertEqual(path, "/v1/token")
        self.assertIn("grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange", body)
        self.assertIn("requested_token_type=urn%3Abaton%3Aparams%3Atoken-type%3Abiscuit", body)
        self.assertIn("resource=pg%3Aappdb%2Fpublic.orders", body)
        self.assertIn("scope=read", body)
        self.assertIn("requested_lifetime=5m", body)

    def test_maps_refusals_to_exchange_error(self):
        _Stub.reply = (400, {"error": "invalid_grant", "error_description": "token expired"})
        with self.assertRaises(ExchangeError) as ctx:
            exchange(self.url, "jwt")
        self.assertEqual((ctx.exception.error, ctx.exception.description, ctx.exception.status), ("invalid_grant", "token expired", 400))
        _Stub.reply = (500, ["garbage"])
        with self.assertRaises(ExchangeError) as ctx:
            exchange(self.url, "jwt")
        self.assertEqual((ctx.exception.error, ctx.exception.status), ("server_error", 500))

    def test_unreachable_broker(self):
        with self.assertRaises(ExchangeError) as ctx:
            exchange("http://127.0.0.1:9", "jwt", timeout=2)
        self.assertEqual(ctx.exception.error, "server_error")


if __name__ == "__main__":
    unittest.main()
