/// The `variableType` of a pipeline variable: Abacus's `PythonFunctionArgumentType`
/// (`abacusai/api_class/enums.py` in abacusai 1.4.119; CLIENTS.md §4.3 lists the same names).
package enum AbacusVariableType: String, CaseIterable, Sendable {
    case featureGroup = "FEATURE_GROUP"
    case integer = "INTEGER"
    case string = "STRING"
    case boolean = "BOOLEAN"
    case float = "FLOAT"
    case json = "JSON"
    case list = "LIST"
    case datasetID = "DATASET_ID"
    case modelID = "MODEL_ID"
    case featureGroupID = "FEATURE_GROUP_ID"
    case monitorID = "MONITOR_ID"
    case batchPredictionID = "BATCH_PREDICTION_ID"
    case deploymentID = "DEPLOYMENT_ID"
    case attachment = "ATTACHMENT"

    /// The type named by `text`, ignoring case (the client upper-cases enum values itself, so `string` is
    /// what a hand-written dict may carry).
    package init?(name text: String) {
        self.init(rawValue: text.uppercased())
    }

    /// The types whose values are Abacus resource ids or names: strings the gateway passes on unchanged.
    var isResourceReference: Bool {
        switch self {
        case .featureGroup, .datasetID, .modelID, .featureGroupID, .monitorID, .batchPredictionID, .deploymentID: true
        case .integer, .string, .boolean, .float, .json, .list, .attachment: false
        }
    }
}
