/**
 * Op stack → expression tree.
 *
 * Biscuit stores an expression in reverse Polish notation; evaluating the stack symbolically gives the
 * tree the printer renders and proves the stack well-formed (every operator has its operands, exactly
 * one value is left), which the encoder checks before signing a block.
 */
import type { BinaryKind, Expression, Op, Term, UnaryKind } from './model.ts';

/** A node of an expression tree. */
export type ExprNode =
  | { readonly kind: 'value'; readonly term: Term }
  | { readonly kind: 'unary'; readonly op: UnaryKind; readonly ffiName?: string; readonly operand: ExprNode }
  | {
      readonly kind: 'binary';
      readonly op: BinaryKind;
      readonly ffiName?: string;
      readonly left: ExprNode;
      readonly right: ExprNode;
    }
  | { readonly kind: 'closure'; readonly params: readonly string[]; readonly body: ExprNode };

/** Thrown for a stack that is not one well-formed expression. */
export class ExpressionShapeError extends Error {
  override readonly name = 'ExpressionShapeError';
}

/** Builds the tree of an op stack, or throws `ExpressionShapeError`. */
export function expressionTree(ops: Expression): ExprNode {
  const stack: ExprNode[] = [];
  for (const op of ops) stack.push(node(op, stack));
  if (stack.length !== 1) {
    throw new ExpressionShapeError(`an expression must leave one value, this one leaves ${stack.length}`);
  }
  return stack[0]!;
}

function node(op: Op, stack: ExprNode[]): ExprNode {
  if ('value' in op) return { kind: 'value', term: op.value };
  if ('closure' in op) return { kind: 'closure', params: op.closure.params, body: expressionTree(op.closure.ops) };
  if ('unary' in op) {
    const operand = stack.pop();
    if (!operand) throw new ExpressionShapeError(`unary ${op.unary} without an operand`);
    return { kind: 'unary', op: op.unary, ...(op.ffiName !== undefined ? { ffiName: op.ffiName } : {}), operand };
  }
  const right = stack.pop();
  const left = stack.pop();
  if (!left || !right) throw new ExpressionShapeError(`binary ${op.binary} without two operands`);
  return {
    kind: 'binary',
    op: op.binary,
    ...(op.ffiName !== undefined ? { ffiName: op.ffiName } : {}),
    left,
    right,
  };
}
