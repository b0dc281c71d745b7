//! One table per set of wire codes. [`code_table!`] declares a `#[repr(u8)]` enum from rows of
//! `Variant = number, "name";` and generates, from those rows alone, `TABLE` (every row as
//! `(variant, number, name)`), `ALL`, `from_code` and `name`. Adding a code is adding one row.
//!
//! A number used twice does not compile (duplicate discriminant); [`assert_unique`] is the
//! test, run for every table, that no number and no name is used twice.

/// Declares a code enum and its table; see the module documentation.
macro_rules! code_table {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Enum:ident {
            $( $(#[$vmeta:meta])* $Variant:ident = $code:literal, $name:literal; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        $vis enum $Enum {
            $( $(#[$vmeta])* $Variant = $code, )+
        }

        impl $Enum {
            /// Every code as `(variant, number, name)`, in table order.
            pub const TABLE: &'static [($Enum, u8, &'static str)] =
                &[$( ($Enum::$Variant, $code, $name), )+];

            /// Every code, in table order.
            pub const ALL: &'static [$Enum] = &[$( $Enum::$Variant, )+];

            /// The code with this number, if there is one.
            pub fn from_code(code: u8) -> Option<$Enum> {
                match code {
                    $( $code => Some($Enum::$Variant), )+
                    _ => None,
                }
            }

            /// The code's name, as the table gives it.
            pub fn name(self) -> &'static str {
                match self {
                    $( $Enum::$Variant => $name, )+
                }
            }
        }
    };
}

pub(crate) use code_table;

/// Panics unless every number and every name of `table` is used once, and every row's number
/// is its variant's discriminant (`to_u8`).
#[cfg(test)]
pub(crate) fn assert_unique<T: Copy + std::fmt::Debug>(
    table: &[(T, u8, &'static str)],
    to_u8: impl Fn(T) -> u8,
) {
    let mut codes = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for &(v, code, name) in table {
        assert_eq!(to_u8(v), code, "{v:?}");
        assert!(codes.insert(code), "code {code} is used twice");
        assert!(names.insert(name), "name {name:?} is used twice");
        assert!(!name.is_empty(), "{v:?} has no name");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    code_table! {
        enum Sample {
            A = 1, "a";
            B = 2, "b";
        }
    }

    #[test]
    fn the_table_drives_everything() {
        assert_unique(Sample::TABLE, |s| s as u8);
        assert_eq!(Sample::from_code(2), Some(Sample::B));
        assert_eq!(Sample::from_code(3), None);
        assert_eq!(Sample::A.name(), "a");
        assert_eq!(Sample::ALL, &[Sample::A, Sample::B]);
    }

    #[test]
    #[should_panic(expected = "used twice")]
    fn a_name_used_twice_is_caught() {
        assert_unique(&[(1u8, 1, "x"), (2u8, 2, "x")], |v| v);
    }
}
