#include "agent/target/row_text.h"

#include <ctime>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ecliptix::agent {

std::vector<std::string> ColumnNames(const soci::row& row) {
  std::vector<std::string> names;
  for (size_t i = 0; i < row.size(); ++i) {
    names.push_back(row.get_properties(i).get_name());
  }
  return names;
}

std::vector<std::string> RowText(const soci::row& row,
                                 std::vector<bool>* nulls) {
  std::vector<std::string> cells;
  if (nulls != nullptr) nulls->clear();
  for (size_t i = 0; i < row.size(); ++i) {
    const bool null = row.get_indicator(i) == soci::i_null;
    if (nulls != nullptr) nulls->push_back(null);
    if (null) {
      cells.emplace_back();
      continue;
    }
    switch (row.get_properties(i).get_data_type()) {
      case soci::dt_string:
      case soci::dt_xml:
      case soci::dt_blob:
        cells.push_back(row.get<std::string>(i));
        break;
      case soci::dt_integer:
        cells.push_back(absl::StrCat(row.get<int>(i)));
        break;
      case soci::dt_long_long:
        cells.push_back(absl::StrCat(row.get<long long>(i)));
        break;
      case soci::dt_unsigned_long_long:
        cells.push_back(absl::StrCat(row.get<unsigned long long>(i)));
        break;
      case soci::dt_double:
        // %.15g: the digits a double holds, without "1.5000000000000000".
        cells.push_back(absl::StrFormat("%.15g", row.get<double>(i)));
        break;
      case soci::dt_date: {
        std::tm value = row.get<std::tm>(i);
        char text[32];
        std::strftime(text, sizeof(text), "%Y-%m-%d %H:%M:%S", &value);
        cells.push_back(text);
        break;
      }
      default:
        cells.emplace_back();
        break;
    }
  }
  return cells;
}

}  // namespace ecliptix::agent
