//! The tract side of hgpose's ops, written once. An op implements [`PlanOp`] (its name, how it
//! evaluates, its output facts, and where it has them its info lines and cost), and
//! [`plan_op!`](crate::plan_op) derives tract's `Op`, `EvalOp` and `TypedOp` from that.

use tract::{tvec, Cost, EvalContext, TDim, TValue, TVec, TractResult, TypedFact};
/// tract's op-facing types, for the macro's expansion.
pub use tract_onnx::tract_core::internal as tract;

/// What an op of hgpose's says of itself; tract's traits follow from it ([`plan_op!`](crate::plan_op)).
pub trait PlanOp {
    /// How plans and profiles name it.
    const NAME: &'static str;

    /// Lines `--profile` and `HGPOSE_LOG=hgpose=debug` show beside the op (its kernel, its shape).
    fn info_lines(&self) -> TractResult<Vec<String>> {
        Ok(vec![])
    }

    fn run(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>>;

    fn facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>>;

    /// The multiply-adds it does, for GMAC/s figures (none unless it says).
    fn costs(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        Ok(tvec!())
    }
}

/// tract's `Op`, `EvalOp` and `TypedOp` for a [`PlanOp`]: stateless, evaluated out of a plan as in
/// one, typed.
#[macro_export]
macro_rules! plan_op {
    ($op:ty) => {
        impl $crate::ops::plan_op::tract::Op for $op {
            fn name(&self) -> $crate::ops::plan_op::tract::StaticName {
                <$op as $crate::ops::plan_op::PlanOp>::NAME.into()
            }

            fn info(&self) -> $crate::ops::plan_op::tract::TractResult<Vec<String>> {
                $crate::ops::plan_op::PlanOp::info_lines(self)
            }

            fn as_typed(&self) -> Option<&dyn $crate::ops::plan_op::tract::TypedOp> {
                Some(self)
            }
        }

        impl $crate::ops::plan_op::tract::EvalOp for $op {
            fn eval(
                &self,
                ctx: &$crate::ops::plan_op::tract::EvalContext,
                inputs: $crate::ops::plan_op::tract::TVec<$crate::ops::plan_op::tract::TValue>,
            ) -> $crate::ops::plan_op::tract::TractResult<
                $crate::ops::plan_op::tract::TVec<$crate::ops::plan_op::tract::TValue>,
            > {
                $crate::ops::plan_op::PlanOp::run(self, ctx, inputs)
            }

            fn eval_out_of_plan(
                &self,
                inputs: $crate::ops::plan_op::tract::TVec<$crate::ops::plan_op::tract::TValue>,
            ) -> $crate::ops::plan_op::tract::TractResult<
                Option<$crate::ops::plan_op::tract::TVec<$crate::ops::plan_op::tract::TValue>>,
            > {
                let ctx = $crate::ops::plan_op::tract::EvalContext::out_of_plan();
                Ok(Some($crate::ops::plan_op::PlanOp::run(self, &ctx, inputs)?))
            }
        }

        impl $crate::ops::plan_op::tract::TypedOp for $op {
            fn as_op(&self) -> &dyn $crate::ops::plan_op::tract::Op {
                self
            }

            fn as_op_mut(&mut self) -> &mut dyn $crate::ops::plan_op::tract::Op {
                self
            }

            fn output_facts(
                &self,
                inputs: &[&$crate::ops::plan_op::tract::TypedFact],
            ) -> $crate::ops::plan_op::tract::TractResult<
                $crate::ops::plan_op::tract::TVec<$crate::ops::plan_op::tract::TypedFact>,
            > {
                $crate::ops::plan_op::PlanOp::facts(self, inputs)
            }

            fn cost(
                &self,
                inputs: &[&$crate::ops::plan_op::tract::TypedFact],
            ) -> $crate::ops::plan_op::tract::TractResult<
                $crate::ops::plan_op::tract::TVec<(
                    $crate::ops::plan_op::tract::Cost,
                    $crate::ops::plan_op::tract::TDim,
                )>,
            > {
                $crate::ops::plan_op::PlanOp::costs(self, inputs)
            }
        }
    };
}
