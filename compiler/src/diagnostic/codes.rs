//! The registry of diagnostic codes.
//!
//! Each code is stable once published: a number (`E0102`) and a kebab-case
//! name (`unknown-attribute`). Both forms are accepted by `mlops explain`. The
//! long explanation of each code lives in `explanations/<CODE>.md`, one file
//! per code with fixed sections, embedded in the binary.

/// A stable diagnostic code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Code {
    pub id: &'static str,
    pub name: &'static str,
    pub explanation: &'static str,
}

macro_rules! codes {
    ($($constant:ident = $id:literal $name:literal;)*) => {
        $(
            pub const $constant: Code = Code {
                id: $id,
                name: $name,
                explanation: include_str!(concat!("explanations/", $id, ".md")),
            };
        )*
        /// Every code, in numeric order.
        pub const ALL: &[Code] = &[$($constant),*];
    };
}

codes! {
    SYNTAX_ERROR = "E0001" "syntax-error";
    DUPLICATE_ATTRIBUTE = "E0002" "duplicate-attribute";
    UNREADABLE_FILE = "E0003" "unreadable-file";
    INVALID_UTF8 = "E0004" "invalid-utf8";
    NO_CONFIGURATION = "E0005" "no-configuration";
    LIMIT_EXCEEDED = "E0006" "limit-exceeded";
    UNKNOWN_BLOCK_KIND = "E0101" "unknown-block-kind";
    UNKNOWN_ATTRIBUTE = "E0102" "unknown-attribute";
    MISSING_REQUIRED_ATTRIBUTE = "E0103" "missing-required-attribute";
    DUPLICATE_NAME = "E0104" "duplicate-name";
    WRONG_LABEL_COUNT = "E0105" "wrong-label-count";
    INVALID_NAME = "E0106" "invalid-name";
    TOO_MANY_BLOCKS = "E0107" "too-many-blocks";
    CONFLICTING_ATTRIBUTES = "E0108" "conflicting-attributes";
    MISSING_ONE_OF = "E0109" "missing-one-of";
    BLOCK_ATTRIBUTE_CONFUSION = "E0110" "block-attribute-confusion";
    COUNT_AND_FOR_EACH = "E0111" "count-and-for-each";
    INVALID_LIFECYCLE = "E0112" "invalid-lifecycle";
    UNKNOWN_REFERENCE = "E0201" "unknown-reference";
    UNKNOWN_ATTRIBUTE_REFERENCE = "E0202" "unknown-attribute-reference";
    UNDECLARED_METRIC = "E0203" "undeclared-metric";
    UNKNOWN_COLUMN = "E0204" "unknown-column";
    DEPENDENCY_CYCLE = "E0205" "dependency-cycle";
    REFERENCE_OUT_OF_CONTEXT = "E0206" "reference-out-of-context";
    UNKNOWN_PROVIDER = "E0207" "unknown-provider";
    INVALID_REFERENCE = "E0208" "invalid-reference";
    UNKNOWN_FUNCTION = "E0209" "unknown-function";
    MODULE_NOT_FOUND = "E0210" "module-not-found";
    UNKNOWN_MODULE_INPUT = "E0211" "unknown-module-input";
    MISSING_MODULE_INPUT = "E0212" "missing-module-input";
    MODULE_RECURSION = "E0213" "module-recursion";
    REMOTE_MODULE_NOT_INSTALLED = "E0214" "remote-module-not-installed";
    MODULE_CONTENT_MISMATCH = "E0215" "module-content-mismatch";
    UNKNOWN_VARIABLE = "E0216" "unknown-variable";
    TYPE_MISMATCH = "E0301" "type-mismatch";
    INVALID_TYPE_EXPRESSION = "E0302" "invalid-type-expression";
    FEATURE_TYPE_MISMATCH = "E0303" "feature-type-mismatch";
    WRONG_ARGUMENT_COUNT = "E0304" "wrong-argument-count";
    INVALID_INDEX = "E0305" "invalid-index";
    INVALID_FUNCTION_ARGUMENT = "E0306" "invalid-function-argument";
    COUNT_DEPENDS_ON_APPLY = "E0307" "count-depends-on-apply";
    INVALID_FOR_EACH = "E0308" "invalid-for-each";
    AGGREGATE_COLUMN_TYPE = "E0309" "aggregate-column-type";
    INVALID_VALUE = "E0401" "invalid-value";
    OUT_OF_RANGE = "E0402" "out-of-range";
    INVALID_QUANTITY = "E0403" "invalid-quantity";
    INVALID_DURATION = "E0404" "invalid-duration";
    INVALID_REPLICA_BOUNDS = "E0405" "invalid-replica-bounds";
    INVALID_PERCENTAGE = "E0406" "invalid-percentage";
    INVALID_BOUNDS = "E0407" "invalid-bounds";
    CONSTRAINT_TYPE_MISMATCH = "E0408" "constraint-type-mismatch";
    VARIABLE_VALIDATION_FAILED = "E0409" "variable-validation-failed";
    INVALID_VALIDATION_CONDITION = "E0410" "invalid-validation-condition";
    UNSUPPORTED_VERSION = "E0411" "unsupported-version";
    INVALID_VERSION_CONSTRAINT = "E0412" "invalid-version-constraint";
    MISSING_SOURCE_FILE = "E0413" "missing-source-file";
    INVALID_URI = "E0414" "invalid-uri";
    MISSING_VARIABLE_VALUE = "E0415" "missing-variable-value";
    INVALID_STORAGE_NAME = "E0416" "invalid-storage-name";
    RESERVED_KEY = "E0417" "reserved-key";
    INVALID_SCHEDULE = "E0418" "invalid-schedule";
    INVALID_POLICY = "E0419" "invalid-policy";
    POLICY_VIOLATED = "E0420" "policy-violated";
    MONITOR_METHOD_COLUMN_TYPE = "E0501" "monitor-method-column-type";
    MISSING_DATASET_SCHEMA = "E0502" "missing-dataset-schema";
    PROVIDER_KIND_MISMATCH = "E0601" "provider-kind-mismatch";
    UNSUPPORTED_ON_PROVIDER = "E0602" "unsupported-on-provider";
    ROLLOUT_UNSUPPORTED = "E0603" "rollout-unsupported";
    RUNTIME_PROVIDER_MISMATCH = "E0604" "runtime-provider-mismatch";
    REQUIRED_ON_PROVIDER = "E0605" "required-on-provider";
    UNKNOWN_BACKEND = "E0606" "unknown-backend";
    SENSITIVE_OUTPUT = "E0607" "sensitive-output";
    PROVIDER_ERROR = "E0701" "provider-error";
    PREVENT_DESTROY = "E0702" "prevent-destroy";
    GATE_FAILED = "E0703" "gate-failed";
    CHECK_FAILED = "E0704" "check-failed";
    STATE_LOCKED = "E0705" "state-locked";
    STALE_PLAN = "E0706" "stale-plan";
    STATE_ERROR = "E0707" "state-error";
    UNUSED_VARIABLE = "W0101" "unused-variable";
    GPU_TRAINING_WITHOUT_TIMEOUT = "W0102" "gpu-training-without-timeout";
    DRIFT_WITHOUT_RETRAINING = "W0103" "drift-without-retraining";
    SERVING_WITHOUT_READINESS = "W0104" "serving-without-readiness";
    POLICY_WARNING = "W0105" "policy-warning";
    POLICY_ADVISORY = "W0106" "policy-advisory";
    UNUSED_ALIAS = "W0107" "unused-alias";
}

/// Finds a code by its number (`E0102`, case-insensitive) or its name (`unknown-attribute`).
pub fn lookup(query: &str) -> Option<Code> {
    let query = query.trim();
    ALL.iter().copied().find(|code| code.id.eq_ignore_ascii_case(query) || code.name == query)
}
