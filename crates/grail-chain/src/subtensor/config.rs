//! The subxt configuration for Subtensor.
//!
//! Subtensor's runtime extends transactions with its own extensions. Those whose data is
//! empty (`SubtensorSignedExtension`, `CommitmentsSignedExtension` in 2024;
//! `SudoTransactionExtension`, `CheckShieldedTxValidity`, `SubtensorTransactionExtension`,
//! `DrandPriority` since) are skipped by subxt's generic encoder, but the current runtime
//! also replaces `ChargeTransactionPayment` with `ChargeTransactionPaymentWrapper`
//! (`runtime/src/transaction_payment_wrapper.rs`: a struct around the same
//! `ChargeTransactionPayment`, so the same compact tip on the wire), which subxt's default
//! configuration does not know and refuses (`UnknownTransactionExtension`). [`SubtensorConfig`]
//! is `SubstrateConfig` plus that extension.

use subxt::client::ClientState;
use subxt::config::transaction_extensions::{
    AnyOf, ChargeAssetTxPayment, ChargeTransactionPayment, ChargeTransactionPaymentParams,
    CheckGenesis, CheckMetadataHash, CheckMortality, CheckMortalityParams, CheckNonce,
    CheckNonceParams, CheckSpecVersion, CheckTxVersion, VerifySignature,
};
use subxt::config::TransactionExtension;
use subxt::config::{Config, ExtrinsicParams, ExtrinsicParamsEncoder, ExtrinsicParamsError};
use subxt::ext::codec::{Compact, Encode};
use subxt::ext::scale_value::Value;
use subxt::SubstrateConfig;

/// Subtensor's chain configuration: Substrate's types, and the transaction extensions of
/// both the 2024 and the current runtimes (each runtime's metadata selects its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubtensorConfig {}

impl Config for SubtensorConfig {
    type AccountId = <SubstrateConfig as Config>::AccountId;
    type Address = <SubstrateConfig as Config>::Address;
    type Signature = <SubstrateConfig as Config>::Signature;
    type Hasher = <SubstrateConfig as Config>::Hasher;
    type Header = <SubstrateConfig as Config>::Header;
    type ExtrinsicParams = SubtensorExtrinsicParams;
    type AssetId = <SubstrateConfig as Config>::AssetId;
}

/// The transaction extensions subxt encodes for Subtensor, in the order the metadata lists
/// them; extensions a runtime does not declare are ignored.
pub type SubtensorExtrinsicParams = AnyOf<
    SubtensorConfig,
    (
        VerifySignature<SubtensorConfig>,
        CheckSpecVersion,
        CheckTxVersion,
        CheckNonce,
        CheckGenesis<SubtensorConfig>,
        CheckMortality<SubtensorConfig>,
        ChargeAssetTxPayment<SubtensorConfig>,
        ChargeTransactionPayment,
        ChargeTransactionPaymentWrapper,
        CheckMetadataHash,
    ),
>;

/// The parameters of [`SubtensorExtrinsicParams`].
pub type SubtensorParams = <SubtensorExtrinsicParams as ExtrinsicParams<SubtensorConfig>>::Params;

/// Parameters with an explicit nonce and mortality (`None`: immortal), no tip.
pub fn params(nonce: u64, mortal_for_blocks: Option<u64>) -> SubtensorParams {
    let mortality = match mortal_for_blocks {
        Some(n) => CheckMortalityParams::mortal(n),
        None => CheckMortalityParams::immortal(),
    };
    (
        (),
        (),
        (),
        CheckNonceParams::with_nonce(nonce),
        (),
        mortality,
        Default::default(),
        ChargeTransactionPaymentParams::no_tip(),
        ChargeTransactionPaymentParams::no_tip(),
        (),
    )
}

/// Subtensor's `ChargeTransactionPaymentWrapper`: the tip, as `ChargeTransactionPayment`
/// encodes it (a compact balance); nothing implicit.
#[derive(Debug, Clone)]
pub struct ChargeTransactionPaymentWrapper {
    tip: Compact<u128>,
}

impl ExtrinsicParams<SubtensorConfig> for ChargeTransactionPaymentWrapper {
    type Params = ChargeTransactionPaymentParams;

    fn new(
        client: &ClientState<SubtensorConfig>,
        params: Self::Params,
    ) -> Result<Self, ExtrinsicParamsError> {
        // Reuse the inner extension's own parameter handling for the tip.
        let inner =
            <ChargeTransactionPayment as ExtrinsicParams<SubtensorConfig>>::new(client, params)?;
        Ok(Self {
            tip: Compact(inner.tip()),
        })
    }
}

impl ExtrinsicParamsEncoder for ChargeTransactionPaymentWrapper {
    fn encode_value_to(&self, v: &mut Vec<u8>) {
        self.tip.encode_to(v);
    }
}

impl TransactionExtension<SubtensorConfig> for ChargeTransactionPaymentWrapper {
    type Decoded = Value;

    fn matches(identifier: &str, _type_id: u32, _types: &scale_info::PortableRegistry) -> bool {
        identifier == "ChargeTransactionPaymentWrapper"
    }
}
