"""The Biscuit specification's conformance samples (test/fixtures/biscuit-samples, vendored from ../shared/biscuit-samples; see its README):
every sample decodes (except test004_random_block, refused with a clear error), every block prints
the spec's Datalog, symbols and versions match, and the signature chain verifies exactly when the
expected result is not a format/signature error."""
from __future__ import annotations

import json
import os
import unittest

from .helpers import SAMPLES

from baton_sdk import BatonError, append_block, block_to_datalog, decode_token, verify_signatures
from baton_sdk.model import BlockModel, Predicate

#: Must be refused at decode time (its block 1 is random bytes, not a Block message).
UNDECODABLE = {"test004_random_block.bc"}
#: Blocks deliberately reordered: the token's blocks are the spec's in another order.
REORDERED = {"test006_reordered_blocks.bc"}


def load_samples():
    path = os.path.join(SAMPLES, "samples.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def signature_invalid(case) -> bool:
    """The spec expects a format or signature error (before any Datalog runs)."""
    return any("Format" in v["result"].get("Err", {}) for v in case["validations"].values())


@unittest.skipUnless(os.path.isdir(SAMPLES), f"conformance samples not found at {SAMPLES}")
class ConformanceSamples(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.data = load_samples()
        cls.root = cls.data["root_public_key"]

    def read(self, case) -> bytes:
        with open(os.path.join(SAMPLES, case["filename"]), "rb") as f:
            return f.read()

    def test_all_38_samples_are_present(self):
        self.assertEqual(len(self.data["testcases"]), 38)

    def check_sample(self, name):
        case = next(c for c in self.data["testcases"] if c["filename"] == name)
        data = self.read(case)
        if name in UNDECODABLE:
            with self.assertRaises(BatonError) as ctx:
                decode_token(data)
            self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_MALFORMED")
            self.assertIn("block 1", ctx.exception.message)
            return
        token = decode_token(data)
        self.assertEqual(len(token.blocks), len(case["token"]))
        printed = [block_to_datalog(b) for b in token.blocks]
        expected = [b["code"] for b in case["token"]]
        if name in REORDERED:
            self.assertCountEqual(printed, expected)
        else:
            self.assertEqual(printed, expected)
            for block, spec in zip(token.blocks, case["token"]):
                self.assertEqual(list(block.symbols), spec["symbols"])
                self.assertEqual(block.version, spec["version"])
                self.assertEqual(str(block.external_key) if block.external_key else None, spec["external_key"])
                self.assertEqual([str(k) for k in block.public_keys], spec["public_keys"])
        # the revocation ids the spec lists are the block signatures
        for validation in case["validations"].values():
            ids = validation.get("revocation_ids")
            if ids:
                self.assertEqual([b.revocation_id for b in token.blocks], ids)
        if signature_invalid(case):
            with self.assertRaises(BatonError) as ctx:
                verify_signatures(data, self.root)
            self.assertIn(ctx.exception.code, ("BATON_ERR_TOKEN_SIGNATURE", "BATON_ERR_TOKEN_MALFORMED"))
        else:
            verify_signatures(data, self.root)

    def test_sealed_sample_is_sealed(self):
        case = next(c for c in self.data["testcases"] if c["filename"] == "test020_sealed.bc")
        self.assertTrue(decode_token(self.read(case)).sealed)

    def test_appending_to_every_extensible_sample_keeps_its_chain_valid(self):
        """Ed25519 chains with a secret proof, in signature format 0 and 1 (format 1 chains stay 1)."""
        block = BlockModel(facts=(Predicate("delegated_to", (("string", "x"),)),))
        extended = 0
        for case in self.data["testcases"]:
            data = self.read(case)
            if signature_invalid(case) or case["filename"] in UNDECODABLE:
                continue
            with self.subTest(sample=case["filename"]):
                parent = decode_token(data)
                if parent.sealed or parent.blocks[-1].next_key.algorithm != "ed25519":
                    with self.assertRaises(BatonError):
                        append_block(data, block)
                    continue
                child = verify_signatures(append_block(data, block), self.root)
                expected = max(b.signature_version for b in parent.blocks)
                self.assertEqual(child.blocks[-1].signature_version, expected)
                extended += 1
        self.assertEqual(extended, 30)

    def test_samples_do_not_verify_under_another_root_key(self):
        case = next(c for c in self.data["testcases"] if c["filename"] == "test001_basic.bc")
        other = "ed25519/" + "11" * 32
        with self.assertRaises(BatonError):
            verify_signatures(self.read(case), other)


def _add_sample_tests():
    """One test per sample (test_sample_test001_basic, …) so a failure names its sample."""
    if not os.path.isdir(SAMPLES):
        return
    for case in load_samples()["testcases"]:
        name = case["filename"]
        method = lambda self, name=name: self.check_sample(name)  # noqa: E731
        method.__doc__ = f"{name}: {case['title']}"
        setattr(ConformanceSamples, "test_sample_" + name[:-3], method)


_add_sample_tests()

if __name__ == "__main__":
    unittest.main()
