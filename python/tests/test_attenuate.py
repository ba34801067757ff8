"""attenuate(): what it appends, and every refusal (same codes as src/token/attenuate.ts)."""
from __future__ import annotations

import time
import unittest
from unittest import mock

from .helpers import mint, raw

import baton_sdk.attenuation as attenuate_module
from baton_sdk import BatonError, attenuate, block_to_datalog, decode_token, inspect, verify_signatures
from baton_sdk.model import PublicKey

ORDERS = "pg:appdb/public.orders"
RIGHTS = [("pg:appdb/public.*", "read"), (ORDERS, "insert")]


class AttenuateNarrows(unittest.TestCase):
    def setUp(self):
        self.parent, self.root = mint(RIGHTS, expires_in=3600)
        self.root_key = PublicKey("ed25519", raw(self.root.public_key()))

    def test_appends_the_design_block_and_keeps_the_chain_valid(self):
        child = attenuate(self.parent, resources=[ORDERS], operations=["read"], ttl="5m", delegate_to="helper-7", purpose='count "orders"')
        token = verify_signatures(child, self.root_key)
        self.assertEqual(len(token.blocks), 2)
        text = block_to_datalog(token.blocks[1])
        self.assertIn('delegated_to("helper-7");\npurpose("count \\"orders\\"");\n', text)
        self.assertIn('check if resource($r), {"pg:appdb/public.orders"}.contains($r);', text)
        self.assertIn('check if operation($op), {"read"}.contains($op);', text)
        self.assertRegex(text, r"check if time\(\$t\), \$t <= \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ;")
        self.assertEqual(token.blocks[1].version, 3)  # readable by biscuit-wasm 0.5
        self.assertEqual(token.blocks[1].signature_version, 0)
        # the parent's blocks are untouched: revocation ids are a prefix of the child's
        self.assertEqual(decode_token(self.parent).blocks[0].revocation_id, token.blocks[0].revocation_id)

    def test_prefix_resources_become_starts_with_alternatives(self):
        child = attenuate(self.parent, resources=[ORDERS, "pg:appdb/public.audit_*"], operations=["read"], delegate_to="h")
        text = block_to_datalog(decode_token(child).blocks[1])
        self.assertIn('check if resource($r), {"pg:appdb/public.orders"}.contains($r) or resource($r), $r.starts_with("pg:appdb/public.audit_");', text)
        effective = inspect(child)["effective"]
        self.assertEqual(effective["resources"], [ORDERS, "pg:appdb/public.audit_*"])
        self.assertEqual(effective["operations"], ["read"])
        self.assertFalse(effective["approximate"])

    def test_lineage_and_effective_rights(self):
        child = attenuate(self.parent, resources=[ORDERS], operations=["read"], ttl=60, delegate_to="helper", purpose="triage")
        grand = attenuate(child, ttl=30, delegate_to="grand")
        seen = inspect(grand, {"keys": [{"id": 1, "algorithm": "ed25519", "public_key": self.root_key.key.hex(), "status": "active", "created_at": "x"}]})
        self.assertTrue(seen["verified"])
        self.assertEqual(seen["root_key_id"], 1)
        self.assertEqual([l["depth"] for l in seen["lineage"]], [0, 1, 2])
        self.assertEqual(seen["lineage"][0]["subject"], "alice@example.com")
        self.assertEqual(seen["lineage"][0]["agent"], "planner")
        self.assertEqual(seen["lineage"][1]["delegated_to"], "helper")
        self.assertEqual(seen["lineage"][1]["purpose"], "triage")
        self.assertEqual(seen["lineage"][1]["resources"], [ORDERS])
        self.assertNotIn("resources", seen["lineage"][2])
        self.assertEqual(seen["effective"]["rights"], [{"resource": ORDERS, "operation": "read"}])
        expiries = [l["expires_at"] for l in seen["lineage"]]
        self.assertEqual(expiries, sorted(expiries, reverse=True))  # TTL only shrinks down the chain
        self.assertFalse(inspect(grand)["verified"])

    def test_require_approval_is_a_lineage_fact_not_an_opaque_one(self):
        child = attenuate(self.parent, delegate_to="helper", require_approval=["delete", "update", "delete"])
        text = block_to_datalog(decode_token(child).blocks[1])
        self.assertIn('require_approval("delete");\nrequire_approval("update");\n', text)
        seen = inspect(child)
        self.assertEqual(seen["lineage"][1]["require_approval"], ["delete", "update"])
        self.assertFalse(seen["effective"]["approximate"])
        with self.assertRaises(TypeError):
            attenuate(self.parent, delegate_to="h", require_approval=["drop everything"])

    def test_wildcard_operation_right_narrows_to_named_operations(self):
        parent, _ = mint([("pg:appdb/*", "*")])
        child = attenuate(parent, resources=[ORDERS], operations=["read", "insert"], delegate_to="h")
        self.assertEqual(inspect(child)["effective"]["rights"], [{"resource": ORDERS, "operation": "read"}, {"resource": ORDERS, "operation": "insert"}])

    def test_seal(self):
        sealed = attenuate(self.parent, operations=["read"], delegate_to="h", seal=True)
        self.assertTrue(decode_token(sealed).sealed)
        verify_signatures(sealed, self.root_key)
        with self.assertRaises(BatonError) as ctx:
            attenuate(sealed, delegate_to="again")
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_SEALED")


class AttenuateRefuses(unittest.TestCase):
    """Every refusal happens before any token exists: append_block is never reached."""

    def setUp(self):
        self.parent, _ = mint(RIGHTS, expires_in=600)
        self.short = attenuate(self.parent, ttl=60, delegate_to="h")
        self.narrow = attenuate(self.parent, resources=[ORDERS], operations=["read"], delegate_to="h")
        patcher = mock.patch.object(attenuate_module, "append_block", side_effect=AssertionError("a token was produced"))
        self.append = patcher.start()
        self.addCleanup(patcher.stop)

    def refused(self, code, **kwargs):
        kwargs.setdefault("delegate_to", "helper")
        with self.assertRaises(BatonError) as ctx:
            attenuate(kwargs.pop("token", self.parent), **kwargs)
        self.assertEqual(ctx.exception.code, code, ctx.exception.message)
        self.append.assert_not_called()
        return ctx.exception

    def test_a_resource_the_parent_lacks(self):
        err = self.refused("BATON_ERR_ATTENUATION_WIDENS", resources=["pg:appdb/private.salaries"], operations=["read"])
        self.assertIn("pg:appdb/private.salaries", err.message)

    def test_a_broader_pattern_than_the_parent(self):
        self.refused("BATON_ERR_ATTENUATION_WIDENS", resources=["pg:appdb/*"], operations=["read"])

    def test_an_operation_the_parent_lacks(self):
        self.refused("BATON_ERR_ATTENUATION_WIDENS", operations=["delete"])

    def test_an_operation_the_parent_has_only_on_another_resource(self):
        self.refused("BATON_ERR_ATTENUATION_WIDENS", resources=["pg:appdb/public.customers"], operations=["insert"])

    def test_default_operations_on_a_narrower_resource_that_lacks_one(self):
        # operations default to the parent's (read, insert); insert is not granted on customers
        self.refused("BATON_ERR_ATTENUATION_WIDENS", resources=["pg:appdb/public.customers"])

    def test_a_longer_ttl(self):
        err = self.refused("BATON_ERR_ATTENUATION_WIDENS", ttl="1h")
        self.assertIn("outlive", err.message)

    def test_a_longer_ttl_than_an_intermediate_link(self):
        self.refused("BATON_ERR_ATTENUATION_WIDENS", token=self.short, ttl=120)

    def test_widening_back_after_a_narrowing_link(self):
        self.refused("BATON_ERR_ATTENUATION_WIDENS", token=self.narrow, resources=["pg:appdb/public.customers"], operations=["read"])
        self.refused("BATON_ERR_ATTENUATION_WIDENS", token=self.narrow, operations=["insert"])

    def test_an_expired_parent(self):
        expired, _ = mint(RIGHTS, expires_in=-10)
        self.refused("BATON_ERR_TOKEN_EXPIRED", token=expired)

    def test_a_malformed_parent(self):
        self.refused("BATON_ERR_TOKEN_MALFORMED", token="not a token!")
        self.refused("BATON_ERR_TOKEN_MALFORMED", token="AAAA")

    def test_delegate_name_and_purpose(self):
        for bad in (None, "", "x" * 257):
            with self.assertRaises(TypeError):
                attenuate(self.parent, delegate_to=bad)
        self.refused("BATON_ERR_INVALID_REQUEST", delegate_to="helper\n7")
        err = self.refused("BATON_ERR_INVALID_REQUEST", delegate_to="helper", purpose="evil\u202eoot")
        self.assertIn("U+202E", err.message)
        self.refused("BATON_ERR_INVALID_REQUEST", delegate_to="zero\u200bwidth")

    def test_vocabulary_errors_are_type_errors(self):
        for kwargs in (
            {"operations": ["frobnicate"]},
            {"operations": ["*"]},
            {"resources": ["orders"]},
            {"resources": ["pg:appdb/pub*lic"]},
            {"resources": "pg:appdb/public.orders"},
            {"ttl": "5 minutes"},
            {"ttl": 0},
            {"ttl": -5},
        ):
            with self.subTest(**{k: str(v) for k, v in kwargs.items()}):
                with self.assertRaises(TypeError):
                    attenuate(self.parent, delegate_to="h", **kwargs)
        self.append.assert_not_called()


class AttenuateBounds(unittest.TestCase):
    def test_a_chain_longer_than_max_blocks_is_refused(self):
        token, _ = mint(RIGHTS)
        for i in range(15):
            token = attenuate(token, delegate_to=f"h{i}")
        with self.assertRaises(BatonError) as ctx:
            attenuate(token, delegate_to="one-too-many")
        self.assertEqual(ctx.exception.code, "BATON_ERR_TOKEN_TOO_COMPLEX")


if __name__ == "__main__":
    unittest.main()
