# Schemas of the storage kinds: bucket and dataset.
#
# A `kind` block declares a resource kind. Inside it, `attribute` blocks
# declare attributes and `block` blocks declare nested blocks. Settings:
#   type          the attribute's type; `ref(kind, ...)` is a reference to a resource
#   required      must be set
#   computed      set by the provider; with `configurable = true` the user may also set it
#   default       the value when unset
#   allowed       the strings it may take
#   min, max      numeric bounds; `integer = true` asks for a whole number
#   format        a string language checked before apply: memory, cpu, duration, uri,
#                 uri_or_path, local_path, percent, bucket_name (S3's naming rules),
#                 registry_name (path-like parts that never climb out with `..`)
#   force_new     changing it replaces the resource instead of updating it
#   only_on       providers that support it; elsewhere it is an error, never ignored
#   required_on   providers that need it
#   requires      other attributes it needs
#   context       the extra name available inside the expression: `row` or `self`
#   reads_as      `metrics`: the configured names are read back as an object of numbers
#   stores_data   the attribute holds where the resource's data is stored (a URI);
#                 a resource that refers to it can fetch the data through its provider
#   lineage       the attribute is kept in lineage (`mlops lineage` shows it)
# Settings of a kind itself: description, providers (the first is the default),
# retained (removing the block forgets the resource), declarable, and identity:
# the attribute whose change means "a new version exists" to what refers to it
# (`version` unless given); and include: the `shared "NAME"` blocks whose
# attributes and blocks it takes (see plumbing.hcl).

kind "bucket" {
  description = "An object-storage bucket: a directory under .mlops/objects/ on the local provider, a bucket on S3."
  providers   = ["local", "s3"]
  identity    = "uri"

  attribute "name" {
    type        = string
    required    = true
    force_new   = true
    format      = "bucket_name"
    description = "The bucket's name in the store."
    lineage     = true
  }
  attribute "versioning" {
    type        = bool
    default     = false
    description = "Keep every version of every object."
  }
  attribute "tags" {
    type        = map(string)
    default     = {}
    description = "Tags set on the bucket."
  }
  attribute "force_destroy" {
    type        = bool
    default     = false
    description = "Allow destroying the bucket while it still holds objects."
  }
  block "lifecycle_rule" {
    description = "Expire objects under a prefix after a number of days."
    attribute "prefix" {
      type        = string
      default     = ""
      description = "The key prefix the rule applies to."
    }
    attribute "expire_days" {
      type        = number
      required    = true
      min         = 1
      integer     = true
      description = "Days after which objects expire."
    }
  }
  attribute "uri" {
    type        = string
    computed    = true
    description = "The bucket's URI (s3://NAME or file://PATH)."
    stores_data = true
    lineage     = true
  }
}

kind "dataset" {
  description    = "A versioned, validated set of rows: uploaded from a local source, or referenced where it already lives."
  providers      = ["local", "s3"]
  retained       = true
  exactly_one_of = ["source", "uri"]

  attribute "bucket" {
    type        = ref(bucket)
    force_new   = true
    description = "Where the data is stored. Needed with `source`."
  }
  attribute "source" {
    type        = string
    format      = "local_path"
    requires    = ["bucket"]
    description = "A local file or directory, uploaded content-addressed."
    lineage     = true
  }
  attribute "uri" {
    type         = string
    format       = "uri"
    computed     = true
    configurable = true
    description  = "Data that already lives in object storage; computed for uploaded sources."
    stores_data  = true
    lineage      = true
  }
  attribute "format" {
    type        = string
    default     = "csv"
    allowed     = ["csv", "parquet", "jsonl"]
    description = "How the files are encoded."
    lineage     = true
  }
  attribute "description" {
    type        = string
    description = "What the data is."
  }
  attribute "tags" {
    type        = map(string)
    default     = {}
    description = "Tags recorded with every version."
  }
  block "schema" {
    max_items   = 1
    description = "The columns every row must have; checked against the real data on apply."
    block "column" {
      labels      = ["name"]
      min_items   = 1
      description = "One column."
      attribute "type" {
        type        = string
        required    = true
        allowed     = ["string", "int", "float", "bool", "timestamp"]
        description = "The column's type."
      }
      attribute "nullable" {
        type        = bool
        default     = false
        description = "Whether values may be missing."
      }
      attribute "min" {
        type        = number
        description = "Smallest allowed value (int and float columns)."
      }
      attribute "max" {
        type        = number
        description = "Largest allowed value (int and float columns)."
      }
      attribute "allowed" {
        type        = list(string)
        description = "The values a string column may take."
      }
      attribute "description" {
        type        = string
        description = "What the column holds."
      }
    }
  }
  block "check" {
    labels      = ["name"]
    description = "A condition on the dataset as a whole, evaluated on apply; a failing check stops everything downstream."
    attribute "condition" {
      type        = bool
      required    = true
      context     = "self"
      description = "Must hold; `self` is the dataset (self.row_count, self.size_bytes)."
    }
    attribute "error_message" {
      type        = string
      required    = true
      context     = "self"
      description = "Shown when the condition fails; may use `self` as the condition does."
    }
  }
  attribute "version" {
    type        = string
    computed    = true
    description = "The content hash of the data (b3:...)."
  }
  attribute "row_count" {
    type        = number
    computed    = true
    description = "Number of rows."
    lineage     = true
  }
  attribute "size_bytes" {
    type        = number
    computed    = true
    description = "Total size of the data files."
    lineage     = true
  }
}
